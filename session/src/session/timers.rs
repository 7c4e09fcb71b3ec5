//! Time: loss detection, probe timeouts, path timers, keepalive and the peer deadline;
//! and the resend after the relay path was re-established.

use std::time::Instant;

use super::{Event, Session, State};
use crate::error::CloseReason;
use crate::path::manager::RELAY;

impl Session {
    /// The relay path was re-established (e.g. a new relay connection): resend what is
    /// in flight on it now and ask for an acknowledgement.
    pub fn on_path_reset(&mut self, now: Instant) {
        self.rec.requeue_path(RELAY, &mut self.paths);
        self.rec.pto_count = 0;
        self.ping_owed = true;
        self.ack_at = Some(now);
    }

    /// Advances timers: loss detection, probe timeout, path probes and failures,
    /// keepalive and the peer deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Closed(_) = self.state {
            return;
        }
        if now.saturating_duration_since(self.last_recv) >= self.cfg.peer_deadline {
            self.state = State::Closed(CloseReason::PeerLost);
            self.events.push_back(Event::Closed(CloseReason::PeerLost));
            return;
        }
        if self.rec.loss_time.is_some_and(|t| t <= now) {
            self.rec.detect_lost(now, &mut self.paths);
            self.stats.lost = self.rec.lost;
        }
        if self.pto_deadline().is_some_and(|t| t <= now) {
            self.rec.on_pto(now, &mut self.paths);
            self.stats.ptos += 1;
        }
        for failed in self.paths.on_timeout(now) {
            // Whatever was in flight there goes again on the path now in use.
            self.rec.requeue_path(failed, &mut self.paths);
        }
        self.refresh_stats();
        if now.saturating_duration_since(self.last_send) >= self.cfg.keepalive {
            self.ping_owed = true;
        }
    }

    fn pto_deadline(&self) -> Option<Instant> {
        self.rec.pto_deadline(&self.paths, self.cfg.rto_min, self.cfg.rto_max, self.cfg.ack_delay)
    }

    /// When `handle_timeout` (or `poll_transmit`, for paced packets and probes) should
    /// next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let State::Closed(_) = self.state {
            return None;
        }
        let mut t = self.last_recv + self.cfg.peer_deadline;
        t = t.min(self.last_send + self.cfg.keepalive);
        for x in [
            self.ack_at,
            self.rec.loss_time,
            self.pto_deadline(),
            self.pace_at,
            self.paths.poll_timeout(self.last_send.max(self.last_recv)),
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(x);
        }
        Some(t)
    }
}
