//! NewReno as RFC 9002 §7 specifies it for QUIC: slow start, congestion avoidance, one
//! window reduction per recovery period, and a collapse on persistent congestion.

use std::time::Instant;

use super::{Controller, RttEstimator};

/// NewReno congestion control.
#[derive(Debug, Clone)]
pub struct NewReno {
    mtu: u64,
    window: u64,
    ssthresh: u64,
    /// Packets sent before this time belong to the current recovery period.
    recovery_start: Option<Instant>,
    /// Bytes acknowledged towards the next one-packet increase (congestion avoidance).
    acked: u64,
}

impl NewReno {
    /// A controller for packets of at most `mtu` bytes, starting with RFC 9002's initial
    /// window: `min(10 × mtu, max(14,720, 2 × mtu))`.
    pub fn new(mtu: u64) -> NewReno {
        let mtu = mtu.max(1);
        NewReno {
            mtu,
            window: (10 * mtu).min(14_720u64.max(2 * mtu)),
            ssthresh: u64::MAX,
            recovery_start: None,
            acked: 0,
        }
    }

    /// The smallest window: two packets.
    pub fn minimum_window(&self) -> u64 {
        2 * self.mtu
    }

    fn in_recovery(&self, sent: Instant) -> bool {
        self.recovery_start.is_some_and(|r| sent <= r)
    }
}

impl Controller for NewReno {
    fn window(&self) -> u64 {
        self.window
    }

    fn on_ack(&mut self, _now: Instant, sent: Instant, bytes: u64, app_limited: bool, _rtt: &RttEstimator) {
        if app_limited || self.in_recovery(sent) {
            return;
        }
        if self.window < self.ssthresh {
            self.window += bytes;
        } else {
            self.acked += bytes;
            if self.acked >= self.window {
                self.acked -= self.window;
                self.window += self.mtu;
            }
        }
    }

    fn on_congestion_event(&mut self, now: Instant, sent: Instant, persistent: bool) {
        if persistent {
            self.window = self.minimum_window();
            self.ssthresh = self.window;
            self.recovery_start = Some(now);
            self.acked = 0;
            return;
        }
        if self.in_recovery(sent) {
            return;
        }
        self.recovery_start = Some(now);
        self.window = (self.window / 2).max(self.minimum_window());
        self.ssthresh = self.window;
        self.acked = 0;
    }

    fn in_slow_start(&self) -> bool {
        self.window < self.ssthresh
    }

    fn name(&self) -> &'static str {
        "newreno"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn rtt() -> RttEstimator {
        RttEstimator::new(Duration::from_millis(100))
    }

    #[test]
    fn slow_start_avoidance_and_one_cut_per_recovery_period() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut c = NewReno::new(1200);
        assert_eq!(c.window(), 12_000);
        c.on_ack(ms(10), ms(0), 12_000, false, &rtt());
        assert_eq!(c.window(), 24_000, "slow start doubles per window acknowledged");
        c.on_ack(ms(10), ms(0), 1200, true, &rtt());
        assert_eq!(c.window(), 24_000, "an application-limited sender does not grow");
        c.on_congestion_event(ms(20), ms(15), false);
        assert_eq!(c.window(), 12_000);
        c.on_congestion_event(ms(21), ms(16), false);
        assert_eq!(c.window(), 12_000, "losses sent before the cut belong to the same period");
        c.on_ack(ms(22), ms(18), 1200, false, &rtt());
        assert_eq!(c.window(), 12_000, "acks of packets sent before recovery do not grow it");
        for _ in 0..10 {
            c.on_ack(ms(40), ms(25), 1200, false, &rtt());
        }
        assert_eq!(c.window(), 13_200, "congestion avoidance: one packet per window");
        c.on_congestion_event(ms(50), ms(45), true);
        assert_eq!(c.window(), 2400, "persistent congestion collapses to the minimum");
    }

    proptest! {
        /// Whatever happens, the window stays between two packets and what was acknowledged
        /// could justify, and a loss never grows it.
        #[test]
        fn window_stays_bounded(events in proptest::collection::vec((any::<bool>(), 0u64..5000, any::<bool>(), 0u64..50), 0..300)) {
            let t0 = Instant::now();
            let mut c = NewReno::new(1200);
            let mut now = t0;
            let mut acked_total = 0u64;
            for (is_ack, bytes, flag, dt) in events {
                now += Duration::from_millis(dt);
                let sent = now.checked_sub(Duration::from_millis(dt / 2)).unwrap_or(t0);
                let before = c.window();
                if is_ack {
                    c.on_ack(now, sent, bytes, flag, &rtt());
                    acked_total += bytes;
                    prop_assert!(c.window() >= before);
                } else {
                    c.on_congestion_event(now, sent, flag);
                    prop_assert!(c.window() <= before.max(c.minimum_window()));
                }
                prop_assert!(c.window() >= c.minimum_window());
                prop_assert!(c.window() <= 12_000 + acked_total);
            }
        }
    }
}
