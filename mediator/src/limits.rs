//! Connection counting (TLS handshakes included) and per-IP request rate limiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Limits;
use crate::quota::{Refusal, Refusals};

/// Counts open connections, in total and per IP, from TCP accept (before any TLS handshake)
/// until the connection is dropped.
#[derive(Default)]
pub struct ConnTracker {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refused: Arc<Refusals>,
}

/// Held while a connection is open; releases its slot on drop.
pub struct ConnGuard {
    tracker: Arc<ConnTracker>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.tracker.total.fetch_sub(1, Ordering::Relaxed);
        let mut map = self.tracker.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl ConnTracker {
    /// A tracker that counts its refusals in `refused`.
    pub fn with_refusals(refused: Arc<Refusals>) -> ConnTracker {
        ConnTracker { refused, ..ConnTracker::default() }
    }

    /// Takes a slot for `ip`, or says which limit is hit (and counts the refusal).
    pub fn try_open(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<ConnGuard, &'static str> {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::Relaxed) >= limits.max_connections {
            self.refused.inc(Refusal::Connections);
            return Err("the mediator is at its connection limit");
        }
        let n = map.entry(ip).or_default();
        if *n >= limits.max_connections_per_ip {
            self.refused.inc(Refusal::ConnectionsPerIp);
            return Err("too many connections from your address");
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnGuard { tracker: self.clone(), ip })
    }

    /// Open connections in total.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// Token buckets per IP.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` sustained with `burst` extra.
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(per_second),
            burst: f64::from(per_second.saturating_add(burst)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `ip`; false when the bucket is empty.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // Forget idle addresses rather than grow without bound.
            map.retain(|_, (tokens, at)| *tokens < self.burst || now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = map.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
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
    fn connection_limits() {
        let t = Arc::new(ConnTracker::default());
        let limits = Limits { max_connections: 3, max_connections_per_ip: 2, ..Limits::default() };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = t.try_open(a, &limits).unwrap();
        let _g2 = t.try_open(a, &limits).unwrap();
        assert!(t.try_open(a, &limits).is_err());
        let _g3 = t.try_open(b, &limits).unwrap();
        assert!(t.try_open(b, &limits).is_err(), "total limit");
        drop(g1);
        assert!(t.try_open(a, &limits).is_ok());
        assert_eq!((t.refused.get(Refusal::ConnectionsPerIp), t.refused.get(Refusal::Connections)), (1, 1));
    }

    #[test]
    fn rate_limit() {
        let r = RateLimiter::new(1, 2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..3).all(|_| r.allow(ip)));
        assert!(!r.allow(ip));
        assert!(r.allow("10.0.0.9".parse().unwrap()));
    }
}
