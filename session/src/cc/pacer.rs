//! Pacing (RFC 9002 §7.7): a token bucket that lets a path send its congestion window
//! spread over one round trip (at 1.25 × window / RTT) instead of in one burst.

use std::time::{Duration, Instant};

/// A token bucket in bytes.
#[derive(Debug, Clone)]
pub struct Pacer {
    tokens: f64,
    last: Option<Instant>,
}

/// Pacing rate relative to window / RTT.
const GAIN: f64 = 1.25;
/// Most packets a full bucket releases at once.
const BURST_PACKETS: u64 = 10;

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    /// An empty bucket (it fills to a burst at the first use).
    pub fn new() -> Pacer {
        Pacer { tokens: f64::MAX, last: None }
    }

    fn capacity(window: u64, mtu: u64) -> f64 {
        (BURST_PACKETS * mtu).min(window).max(2 * mtu) as f64
    }

    fn refill(&mut self, now: Instant, window: u64, rtt: Duration, mtu: u64) -> f64 {
        let rate = GAIN * window as f64 / rtt.as_secs_f64().max(1e-6);
        let cap = Pacer::capacity(window, mtu);
        let elapsed = self.last.map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.tokens = (self.tokens.min(cap) + rate * elapsed).min(cap);
        self.last = Some(now);
        rate
    }

    /// When a packet of `bytes` may leave: `None` now, else the time it may.
    /// `window` and `rtt` are the path's; without an RTT sample nothing is paced.
    pub fn delay(&mut self, now: Instant, bytes: u64, window: u64, rtt: Option<Duration>, mtu: u64) -> Option<Instant> {
        let rtt = rtt?;
        if window == u64::MAX {
            return None;
        }
        let rate = self.refill(now, window, rtt, mtu);
        let need = bytes.min(mtu) as f64;
        if self.tokens >= need {
            return None;
        }
        let wait = (need - self.tokens) / rate;
        Some(now + Duration::from_secs_f64(wait).max(Duration::from_micros(50)))
    }

    /// A packet of `bytes` left.
    pub fn on_sent(&mut self, bytes: u64) {
        if self.tokens != f64::MAX {
            self.tokens = (self.tokens - bytes as f64).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_spreads_over_a_round_trip() {
        let t0 = Instant::now();
        let (window, mtu, rtt) = (120_000u64, 1200u64, Duration::from_millis(100));
        let mut p = Pacer::new();
        let mut now = t0;
        let mut sent = 0u64;
        // Send as fast as the pacer allows for one RTT.
        while now < t0 + rtt {
            match p.delay(now, mtu, window, Some(rtt), mtu) {
                None => {
                    p.on_sent(mtu);
                    sent += mtu;
                }
                Some(t) => now = t,
            }
        }
        // 1.25 windows per RTT, plus the first burst.
        let expect = 1.25 * window as f64 + (10 * mtu) as f64;
        assert!((sent as f64) <= expect + mtu as f64, "sent {sent}, at most {expect}");
        assert!((sent as f64) >= expect - 2.0 * mtu as f64, "sent {sent}, about {expect}");
        // Without an RTT sample, or with an unbounded window, nothing waits.
        assert_eq!(Pacer::new().delay(t0, mtu, window, None, mtu), None);
        assert_eq!(Pacer::new().delay(t0, mtu, u64::MAX, Some(rtt), mtu), None);
    }
}
