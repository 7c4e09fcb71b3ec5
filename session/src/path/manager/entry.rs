//! One entry of the path table: a path's estimators, congestion controller, pacer and
//! validation state; and the probe the manager asks to send on one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::cc::{Controller, NewReno, Pacer, RttEstimator, Unbounded, WindowedMin};
use crate::path::{PathAddr, PathConfig, PathState};

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
    pub(super) challenges: VecDeque<(u64, Instant)>,
    /// When to challenge next.
    pub(super) next_probe: Option<Instant>,
    /// Probing gives up at this time.
    pub(super) probing_until: Option<Instant>,
    /// Tokens of the peer's challenges to echo.
    pub(super) responses: Vec<u64>,
    /// The last packet heard on it.
    pub last_recv: Option<Instant>,
    /// The first ack-eliciting packet we sent on it since we last heard on it.
    pub(super) awaiting: Option<Instant>,
    /// A challenge was asked for during this silence already.
    pub(super) elicited: bool,
    /// Delay before the next re-probe of a failed path.
    pub(super) retry: Duration,
    /// Packets sent, received, declared lost.
    pub sent: u64,
    /// See `sent`.
    pub received: u64,
    /// See `sent`.
    pub lost: u64,
}

impl Path {
    pub(super) fn new(addr: PathAddr, state: PathState, mtu: usize, initial_rtt: Duration, retry: Duration) -> Path {
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

    pub(super) fn usable(&self) -> bool {
        self.state == PathState::Validated
    }

    /// How long this path may stay silent after we sent on it before it is declared failed.
    pub(super) fn fail_timeout(&self, cfg: &PathConfig) -> Duration {
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
