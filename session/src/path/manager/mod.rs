//! The path manager: the table of paths, their validation, the choice of the active path,
//! failure detection and re-probing, and the punching schedule. Sans IO: it says which
//! probe to send where ([`Paths::poll_probe`]) and learns what arrived on which path.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod entry;
mod schedule;

pub use entry::{Path, Probe};

use super::punch::{Burst, Nat, Offer, Rng, Spray};
use super::{PathAddr, PathConfig, PathInfo, PathReport, PathState, Switch};

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
