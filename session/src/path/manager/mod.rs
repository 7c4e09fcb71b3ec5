//! The path manager: the table of paths, their validation, the choice of the active path,
//! failure detection and re-probing, and the punching schedule. Sans IO: it says which
//! probe to send where ([`Paths::poll_probe`]) and learns what arrived on which path.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::punch::{Burst, Nat, Offer, Rng, Spray};
use super::{PathAddr, PathConfig, PathInfo, PathReport, PathState, Switch, SwitchReason};
use crate::cc::{Controller, NewReno, Pacer, RttEstimator, Unbounded, WindowedMin};

/// Index of the relay path (always present).
pub const RELAY: usize = 0;
/// Challenges remembered per path (a late response still validates).
const CHALLENGES_KEPT: usize = 8;
/// Responses owed per path (more are dropped: the peer challenges again).
const RESPONSES_OWED: usize = 8;
/// Direct paths kept validated at once (the best and a spare).
const MAX_VALIDATED: usize = 2;
/// Switches kept for reports.
const SWITCHES_KEPT: usize = 64;

/// One path.
pub struct Path {
    /// Where it goes.
    pub addr: PathAddr,
    /// Its state.
    pub state: PathState,
    /// Its RTT.
    pub rtt: RttEstimator,
    /// Its recent minimum RTT (paths are compared by it).
    pub min_rtt: WindowedMin,
    /// Its congestion controller.
    pub cc: Box<dyn Controller>,
    /// Its pacer.
    pub pacer: Pacer,
    /// Largest session packet it carries, bytes.
    pub mtu: usize,
    /// Bytes of packets in flight on it.
    pub in_flight: u64,
    /// Our outstanding challenges (token, sent).
    challenges: VecDeque<(u64, Instant)>,
    /// When to challenge next.
    next_probe: Option<Instant>,
    /// Probing gives up at this time.
    probing_until: Option<Instant>,
    /// Tokens of the peer's challenges to echo.
    responses: Vec<u64>,
    /// The last packet heard on it.
    pub last_recv: Option<Instant>,
    /// The first ack-eliciting packet we sent on it since we last heard on it.
    awaiting: Option<Instant>,
    /// A challenge was asked for during this silence already.
    elicited: bool,
    /// Delay before the next re-probe of a failed path.
    retry: Duration,
    /// Packets sent, received, declared lost.
    pub sent: u64,
    /// See `sent`.
    pub received: u64,
    /// See `sent`.
    pub lost: u64,
}

impl Path {
    fn new(addr: PathAddr, state: PathState, mtu: usize, initial_rtt: Duration, retry: Duration) -> Path {
        let cc: Box<dyn Controller> = match addr {
            PathAddr::Relay => Box::new(Unbounded),
            PathAddr::Udp { .. } => Box::new(NewReno::new(mtu as u64)),
        };
        Path {
            addr,
            state,
            rtt: RttEstimator::new(initial_rtt),
            min_rtt: WindowedMin::default(),
            cc,
            pacer: Pacer::new(),
            mtu,
            in_flight: 0,
            challenges: VecDeque::new(),
            next_probe: None,
            probing_until: None,
            responses: Vec::new(),
            last_recv: None,
            awaiting: None,
            elicited: false,
            retry,
            sent: 0,
            received: 0,
            lost: 0,
        }
    }

    fn usable(&self) -> bool {
        self.state == PathState::Validated
    }

    /// How long this path may stay silent after we sent on it before it is declared failed.
    fn fail_timeout(&self, cfg: &PathConfig) -> Duration {
        (self.rtt.pto_base() * 3).clamp(cfg.fail_min, cfg.fail_max)
    }
}

/// A probe to send: challenge and/or responses on one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Where.
    pub addr: PathAddr,
    /// Our challenge's token, if any.
    pub challenge: Option<u64>,
    /// Tokens of the peer's challenges we echo.
    pub responses: Vec<u64>,
}

/// Every path of a session.
pub struct Paths {
    cfg: PathConfig,
    paths: Vec<Path>,
    active: usize,
    udp_mtu: usize,
    initial_rtt: Duration,
    next_token: u64,
    switches: VecDeque<Switch>,
    switch_count: u64,
    started: Instant,
    spray: Option<Spray>,
    burst: Option<Burst>,
    rng: Rng,
    generation: u64,
    punching: bool,
    sprayed: u64,
    first_direct: Option<Duration>,
}

impl Paths {
    /// Only the relay path, validated and active.
    pub fn new(
        cfg: PathConfig,
        now: Instant,
        seed: u64,
        initial_rtt: Duration,
        relay_mtu: usize,
        udp_mtu: usize,
    ) -> Paths {
        let relay = Path::new(PathAddr::Relay, PathState::Validated, relay_mtu, initial_rtt, cfg.retry);
        Paths {
            paths: vec![relay],
            active: RELAY,
            udp_mtu,
            initial_rtt,
            next_token: seed | 1,
            switches: VecDeque::new(),
            switch_count: 0,
            started: now,
            spray: None,
            burst: None,
            rng: Rng::new(seed),
            generation: 0,
            punching: false,
            sprayed: 0,
            first_direct: None,
            cfg,
        }
    }

    /// The index of the path new packets take.
    pub fn active(&self) -> usize {
        self.active
    }

    /// A path by index.
    pub fn get(&self, id: usize) -> &Path {
        &self.paths[id]
    }

    /// A path by index.
    pub fn get_mut(&mut self, id: usize) -> &mut Path {
        &mut self.paths[id]
    }

    /// How many paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Folds an RTT sample of path `id` (an acknowledgement of a packet sent on it that came
    /// back on it) into its estimators, and reconsiders the choice of path.
    pub fn on_rtt_sample(&mut self, now: Instant, id: usize, sample: Duration) {
        let p = &mut self.paths[id];
        p.rtt.update(sample);
        p.min_rtt.update(now, sample, self.cfg.rtt_window);
        self.reselect(now);
    }

    /// Whether only the relay exists (never true: the relay is always there).
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Changes on every state change of a path (for reports).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn token(&mut self) -> u64 {
        self.next_token = self.next_token.wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.next_token
    }

    /// The path to `addr`, if tracked.
    pub fn lookup(&self, addr: &PathAddr) -> Option<usize> {
        self.find(addr)
    }

    /// When the session (and this table) started.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Switches of the active path so far.
    pub fn switch_count(&self) -> u64 {
        self.switch_count
    }

    fn find(&self, addr: &PathAddr) -> Option<usize> {
        self.paths.iter().position(|p| p.addr == *addr)
    }

    fn add(&mut self, addr: PathAddr, now: Instant) -> Option<usize> {
        if let Some(i) = self.find(&addr) {
            return Some(i);
        }
        if self.paths.len() >= self.cfg.max_paths {
            return None;
        }
        let mut p = Path::new(addr, PathState::Probing, self.udp_mtu, self.initial_rtt, self.cfg.retry);
        p.next_probe = Some(now);
        p.probing_until = Some(now + self.cfg.punch_timeout);
        self.paths.push(p);
        self.generation += 1;
        Some(self.paths.len() - 1)
    }

    /// Starts punching towards a peer from both offers (see [`super::punch`]).
    pub fn punch(&mut self, now: Instant, ours: &Offer, theirs: &Offer) {
        self.punching = true;
        for c in theirs.candidates(ours.nat) {
            self.add(PathAddr::Udp { local: 0, remote: c }, now);
        }
        let Some(r) = theirs.reflexive.filter(super::punch::acceptable) else { return };
        match (ours.nat, theirs.nat) {
            (Nat::Easy | Nat::Unknown, Nat::Hard) if self.cfg.spray_ports > 0 => {
                self.spray = Some(Spray::new(
                    r.ip(),
                    self.cfg.spray_ports,
                    r.port(),
                    now,
                    self.cfg.spray_interval,
                    &mut self.rng,
                ));
            }
            (Nat::Hard, Nat::Easy | Nat::Unknown) if self.cfg.hard_sockets > 0 => {
                self.burst = Some(Burst {
                    remote: r,
                    sockets: self.cfg.hard_sockets,
                    cursor: 0,
                    next_round: now,
                    interval: self.cfg.hard_interval,
                    until: now + self.cfg.punch_timeout,
                });
            }
            _ => {}
        }
    }

    /// An authenticated packet arrived on `addr`: returns its path (a new one for an
    /// address not seen before, if the table has room).
    pub fn on_receive(&mut self, now: Instant, addr: PathAddr) -> Option<usize> {
        let id = match self.find(&addr) {
            Some(i) => i,
            None if addr.is_direct() && self.punching => self.add(addr, now)?,
            None => return None,
        };
        let p = &mut self.paths[id];
        p.last_recv = Some(now);
        p.awaiting = None;
        p.elicited = false;
        p.received += 1;
        if p.state == PathState::Failed && p.next_probe.is_some_and(|t| t > now) {
            // Something came through again: probe it now.
            p.next_probe = Some(now);
        }
        Some(id)
    }

    /// The peer challenged us on path `id`.
    pub fn on_challenge(&mut self, id: usize, token: u64) {
        let p = &mut self.paths[id];
        if p.responses.len() < RESPONSES_OWED {
            p.responses.push(token);
        }
    }

    /// The peer echoed a challenge on path `id`; validates the path if it was ours.
    pub fn on_response(&mut self, now: Instant, id: usize, token: u64) {
        let p = &mut self.paths[id];
        let Some(pos) = p.challenges.iter().position(|(t, _)| *t == token) else { return };
        let (_, sent) = p.challenges[pos];
        p.challenges.drain(..=pos);
        p.rtt.update(now.saturating_duration_since(sent));
        p.min_rtt.update(now, now.saturating_duration_since(sent), self.cfg.rtt_window);
        if p.state != PathState::Validated {
            let spare = (1..self.paths.len())
                .filter(|&i| i != id && self.paths[i].usable() && self.paths[i].addr.is_direct())
                .count();
            let p = &mut self.paths[id];
            if spare >= MAX_VALIDATED && p.state == PathState::Probing {
                // Enough direct paths already (punching may open many): stop here.
                p.state = PathState::Abandoned;
                p.next_probe = None;
                p.challenges.clear();
                self.generation += 1;
                return;
            }
            p.state = PathState::Validated;
            p.retry = self.cfg.retry;
            p.probing_until = None;
            p.next_probe = Some(now + self.cfg.keepalive);
            if p.addr.is_direct() && self.first_direct.is_none() {
                self.first_direct = Some(now.saturating_duration_since(self.started));
            }
            if spare + 1 >= MAX_VALIDATED && p.addr.is_direct() {
                // Any further path would be abandoned: the rest of the spray and of the
                // burst would be wasted datagrams.
                self.spray = None;
                self.burst = None;
            }
            self.generation += 1;
        }
        self.select(now, None);
    }

    /// We sent a packet on path `id`. `expects`: something should come back on this path
    /// (data, acknowledgements and challenges do; an echo of the peer's challenge does
    /// not). If nothing comes back within a PTO the path is challenged, so even a side that
    /// only acknowledges notices a dead path.
    pub fn on_sent(&mut self, now: Instant, id: usize, expects: bool) {
        let p = &mut self.paths[id];
        p.sent += 1;
        if expects && p.awaiting.is_none() {
            p.awaiting = Some(now);
        }
    }

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
    fn select(&mut self, now: Instant, failed: Option<Duration>) {
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

    /// The report for status.
    pub fn report(&self) -> PathReport {
        PathReport {
            paths: self
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| PathInfo {
                    addr: p.addr,
                    state: p.state,
                    active: i == self.active,
                    srtt: p.rtt.smoothed(),
                    cwnd: Some(p.cc.window()).filter(|w| *w != u64::MAX),
                    sent: p.sent,
                    received: p.received,
                    lost: p.lost,
                })
                .collect(),
            switches: self.switches.iter().cloned().collect(),
            switch_count: self.switch_count,
            punching: self.punching,
            sprayed: self.sprayed,
            first_direct: self.first_direct,
        }
    }

    /// The remote address of the active path, if it is direct.
    pub fn active_remote(&self) -> Option<SocketAddr> {
        match self.paths[self.active].addr {
            PathAddr::Udp { remote, .. } => Some(remote),
            PathAddr::Relay => None,
        }
    }
}
