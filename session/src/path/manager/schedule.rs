//! The path manager's clock: which probe is due ([`Paths::poll_probe`]), what silence
//! fails a path ([`Paths::on_timeout`]), the choice of the active path, and the next
//! deadline ([`Paths::poll_timeout`]).

use std::time::{Duration, Instant};

use super::{Path, Paths, Probe, CHALLENGES_KEPT, RELAY, SWITCHES_KEPT};
use crate::path::punch::Spray;
use crate::path::{PathAddr, PathState, Switch, SwitchReason};

impl Paths {
    /// The next probe to send, if one is due.
    pub fn poll_probe(&mut self, now: Instant) -> Option<Probe> {
        if let Some(p) = self.paths.iter_mut().find(|p| !p.responses.is_empty()) {
            let responses = std::mem::take(&mut p.responses);
            let addr = p.addr;
            return Some(Probe { addr, challenge: None, responses });
        }
        if let Some(s) = self.spray.as_mut() {
            if let Some(remote) = s.poll(now) {
                self.sprayed += 1;
                let token = self.token();
                return Some(Probe {
                    addr: PathAddr::Udp { local: 0, remote },
                    challenge: Some(token),
                    responses: vec![],
                });
            }
            if s.deadline().is_none() {
                self.spray = None;
            }
        }
        if let Some(b) = self.burst.as_mut() {
            if let Some((local, remote)) = b.poll(now) {
                let token = self.token();
                return Some(Probe {
                    addr: PathAddr::Udp { local, remote },
                    challenge: Some(token),
                    responses: vec![],
                });
            }
            if b.deadline(now).is_none() {
                self.burst = None;
            }
        }
        let id = (0..self.paths.len()).find(|&i| self.paths[i].next_probe.is_some_and(|t| t <= now))?;
        let token = self.token();
        let cfg = &self.cfg;
        let active = self.active;
        let p = &mut self.paths[id];
        p.challenges.push_back((token, now));
        if p.challenges.len() > CHALLENGES_KEPT {
            p.challenges.pop_front();
        }
        p.next_probe = match p.state {
            PathState::Probing => Some(now + cfg.punch_interval),
            // Unanswered: ask again after a PTO (the failure check decides); else keepalive.
            PathState::Validated if p.awaiting.is_some() => Some(now + p.rtt.pto_base().max(Duration::from_millis(10))),
            // The relay needs no NAT keepalive: only its RTT, while a direct path is in use.
            PathState::Validated if id == RELAY && active == RELAY => None,
            PathState::Validated => Some(now + cfg.keepalive),
            PathState::Failed => {
                let next = now + p.retry;
                p.retry = (p.retry * 2).min(cfg.retry_max);
                Some(next)
            }
            PathState::Abandoned => None,
        };
        if p.addr.is_direct() && p.awaiting.is_none() && p.state == PathState::Validated {
            p.awaiting = Some(now);
        }
        Some(Probe { addr: p.addr, challenge: Some(token), responses: vec![] })
    }

    /// Advances timers: gives up probing, fails silent direct paths. Returns the paths that
    /// just failed (their packets in flight must be resent elsewhere).
    pub fn on_timeout(&mut self, now: Instant) -> Vec<usize> {
        let mut failed = Vec::new();
        for id in 0..self.paths.len() {
            let cfg = &self.cfg;
            let p = &mut self.paths[id];
            if p.state == PathState::Probing && p.probing_until.is_some_and(|t| now >= t) {
                p.state = PathState::Abandoned;
                p.next_probe = None;
                p.challenges.clear();
                self.generation += 1;
                continue;
            }
            if !(p.addr.is_direct() && p.state == PathState::Validated) {
                continue;
            }
            let Some(since) = p.awaiting else { continue };
            let silent = now.saturating_duration_since(since);
            if silent >= p.fail_timeout(cfg) {
                p.state = PathState::Failed;
                p.awaiting = None;
                p.elicited = false;
                p.challenges.clear();
                p.retry = cfg.retry;
                p.next_probe = Some(now + cfg.retry);
                self.generation += 1;
                failed.push((id, now.saturating_duration_since(p.last_recv.unwrap_or(since).max(since))));
            } else if silent >= p.rtt.pto_base() && !p.elicited {
                // Ask for an answer on this path itself (the peer may route its own
                // packets elsewhere); unanswered challenges repeat every PTO.
                p.elicited = true;
                p.next_probe = Some(p.next_probe.map_or(now, |t| t.min(now)));
            }
        }
        let ids: Vec<usize> = failed.iter().map(|(i, _)| *i).collect();
        if let Some(&(id, _)) = failed.iter().find(|(i, _)| *i == self.active) {
            let silent = failed.iter().find(|(i, _)| *i == id).map(|(_, s)| *s);
            self.select(now, silent);
        }
        if self.spray.as_ref().is_some_and(|s| s.deadline().is_none()) {
            self.spray = None;
        }
        ids
    }

    /// Picks the active path: the validated direct path with the lowest RTT when it beats
    /// the relay's (with hysteresis), else the relay. `failed`: the active path just failed
    /// after this much silence.
    pub(super) fn select(&mut self, now: Instant, failed: Option<Duration>) {
        // Compared by their recent minimum RTT: a path's own traffic queues behind itself
        // and delays the peer's acknowledgements, the relay's challenges do not.
        let min_rtt = |p: &Path| p.min_rtt.get().unwrap_or(p.rtt.get());
        let relay_rtt = self.paths[RELAY].min_rtt.get();
        let best = (1..self.paths.len()).filter(|&i| self.paths[i].usable()).min_by_key(|&i| min_rtt(&self.paths[i]));
        let next = match best {
            None => RELAY,
            Some(d) => {
                let d_rtt = min_rtt(&self.paths[d]);
                let keep_direct = self.active == d || self.paths[self.active].addr.is_direct();
                let margin = if keep_direct { self.cfg.switch_margin } else { 1.0 };
                let slack = self.cfg.switch_slack.as_secs_f64();
                match relay_rtt {
                    Some(r) if d_rtt.as_secs_f64() > r.as_secs_f64() * margin + slack => RELAY,
                    _ => d,
                }
            }
        };
        if next == self.active {
            return;
        }
        let why = match (failed, self.paths[next].addr.is_direct(), self.paths[self.active].addr.is_direct()) {
            (Some(_), _, _) => SwitchReason::Failed,
            (None, true, false) => SwitchReason::Upgrade,
            _ => SwitchReason::Rtt,
        };
        let sw = Switch {
            at: now.saturating_duration_since(self.started),
            from: self.paths[self.active].addr,
            to: self.paths[next].addr,
            why,
            silent_for: failed,
        };
        tracing::debug!(from = %sw.from, to = %sw.to, why = why.as_str(), "path switch");
        if self.switches.len() == SWITCHES_KEPT {
            self.switches.pop_front();
        }
        self.switches.push_back(sw);
        self.switch_count += 1;
        self.active = next;
        if next != RELAY && self.paths[RELAY].next_probe.is_none() {
            // Keep measuring the relay's RTT while a direct path is in use.
            self.paths[RELAY].next_probe = Some(now + self.cfg.keepalive);
        }
        self.generation += 1;
    }

    /// Re-evaluates the active path on new RTT samples.
    pub fn reselect(&mut self, now: Instant) {
        self.select(now, None);
    }

    /// When [`Paths::poll_probe`] or [`Paths::on_timeout`] has work next.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if self.paths.iter().any(|p| !p.responses.is_empty()) {
            at(now);
        }
        if let Some(d) = self.spray.as_ref().and_then(Spray::deadline) {
            at(d);
        }
        if let Some(d) = self.burst.as_ref().and_then(|b| b.deadline(now)) {
            at(d);
        }
        for p in &self.paths {
            if let Some(n) = p.next_probe {
                at(n);
            }
            if let Some(u) = p.probing_until.filter(|_| p.state == PathState::Probing) {
                at(u);
            }
            if let (true, PathState::Validated, Some(a)) = (p.addr.is_direct(), p.state, p.awaiting) {
                if !p.elicited {
                    at(a + p.rtt.pto_base());
                }
                at(a + p.fail_timeout(&self.cfg));
            }
        }
        t
    }
}
